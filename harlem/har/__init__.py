"""HAR documents: building entries, the model, validation."""
