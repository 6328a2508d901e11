"""The error a wrong input raises: a file or folder that is missing, empty, unreadable or holds
nothing usable (or a tool the command needs that is not installed). Its message is one line that
names the input and says what to do;
`python -m hybridopt` prints it on stderr and exits 2. Standard library only (the router's Lambda
package ships this module)."""

from __future__ import annotations


class InputError(ValueError):
    """An input cannot be used; the message names it and what to do."""
