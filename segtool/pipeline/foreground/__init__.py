"""Which clusters are foreground, in one direction: cues -> scorer -> rules."""
