"""Where cases run: worker processes and their protocol, and Ray actors (``--executor ray``)."""
