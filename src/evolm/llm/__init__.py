"""Language-model backends behind one async protocol."""
