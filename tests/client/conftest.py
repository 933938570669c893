"""The compat client's tests run the real CLI against the scripted model server, as the run
API's do: the same ``bed`` fixture."""

from tests.run.conftest import bed

__all__ = ["bed"]
