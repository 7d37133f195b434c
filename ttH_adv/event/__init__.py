"""Event physics: flat columns, the selection, the features and the systematic variations (no file knowledge)."""
