"""Policies and scripts that train and evaluate agents in the SanaWM environments."""
