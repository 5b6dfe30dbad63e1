"""Walkers in the style of ELM's evolved Sodaracers (Wheel, Galloper, Runner), written for
evolm's walker API. They run and move; they are examples, not seeds."""
