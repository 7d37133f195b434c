"""Statistics: mass templates, sideband fits, categorisation, the pyhf workspace, metrics and the method comparison."""
