"""Stand-in for ansible-test's pip bootstrap script (get-pip.py from ci-files.testing.ansible.com,
a host our machines cannot reach). ansible-test runs it in each empty sanity virtualenv with the
pip arguments it wants; this installs pip from the interpreter's bundled wheel (ensurepip), then
those packages from PyPI. The sanity test copies it where ansible-test looks for a cached script.
"""

import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, "-m", "pip", "install", *(a for a in sys.argv[1:] if a not in GET_PIP_ONLY)])
