"""tito: the TinyTorch command-line tool (export, test, module workflow, demo)."""
