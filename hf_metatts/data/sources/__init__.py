"""Speech synthesisers that run offline: espeak-ng (always), flite and festival (when installed)."""
