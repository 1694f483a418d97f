"""Long-running loops: the push worker and (later) the sync scheduler."""
