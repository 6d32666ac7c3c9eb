"""Small helpers below everything else: atomic files and the commands' one-line errors."""
