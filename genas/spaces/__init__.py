"""Families of generators. See ``base.py`` for the contracts; one sub-package per family."""
from genas.spaces.base import (BUDGETS, Generator, GrowableSpace, Space, TrialContext, generator_from_state,
                               get_space, list_spaces, register_space)

__all__ = ["BUDGETS", "Generator", "GrowableSpace", "Space", "TrialContext", "generator_from_state",
           "get_space", "list_spaces", "register_space"]
