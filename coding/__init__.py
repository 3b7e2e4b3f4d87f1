"""Pure-math coding core of kofn."""
