"""Thin adapters that plug derender rewards into RL trainers (verl, EasyR1, TRL, OpenRLHF)."""
