"""The framework core (modules 01-09): import from the submodules, e.g. `tinytorch.core.layers`."""
