"""The local lab: a whole hybridlay cluster on one machine, for newcomers and end-to-end tests."""
