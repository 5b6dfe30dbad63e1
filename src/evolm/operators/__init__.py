"""Operators: parents in, LLM requests out, candidate programs back."""
