"""The hybridlay CNI plugin (stdlib only) and its protocol with the agent."""
