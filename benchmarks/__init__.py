"""Speed and memory of composer against a plain input gradient and hand-written zennit composites."""
