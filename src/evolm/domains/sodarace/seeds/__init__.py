"""The four seed programs of ELM's Sodarace experiments (Square, Radial, CPPN-Fixed and
CPPN-Mutable), written for evolm's walker API. Each file's text is both the seed program and the
code shown in prompts."""
