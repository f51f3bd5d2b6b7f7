"""What bot front ends and billing import to publish: validated, encoded, keyed events."""
