"""Module switches with test-time overrides (test-time isolation, Table 17).

A switch `name` of a module (or of its config section) holds for training;
`test_<name>`, when not None, replaces it at evaluation.
"""


def in_force(settings, name: str, train: bool) -> bool:
  """Whether the part `name` runs in this mode."""
  test = getattr(settings, 'test_' + name, None)
  return bool(getattr(settings, name) if train or test is None else test)


def ever_on(settings, name: str) -> bool:
  """Whether training or evaluation runs the part (so it needs parameters)."""
  return bool(getattr(settings, name) or getattr(settings, 'test_' + name,
                                                  None))
