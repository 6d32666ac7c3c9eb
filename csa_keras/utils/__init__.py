"""Small helpers below everything else; ``docs/layout.md`` lists its modules."""
