"""Domains (environments): seeds, prompt context, evaluation, descriptor space."""
