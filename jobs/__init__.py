"""Work that drives a farm from outside: the demo with its baseline agents (oracle,
random, search) and the batch job that renders a target dataset."""
