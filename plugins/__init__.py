"""Example plugins; a package only so that pytest imports plugins/conftest.py as
`plugins.conftest` and not as a second module named `conftest` (see that file)."""
