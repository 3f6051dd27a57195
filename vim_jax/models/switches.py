"""Module switches with test-time overrides (test-time isolation, Table 17).

A switch `name` of a module's config holds for training; `test_<name>`, when
not None, replaces it at evaluation.
"""


def in_force(config, name: str, train: bool) -> bool:
  """Whether the part `name` runs in this mode."""
  test = config.get('test_' + name)
  return bool(config[name] if train or test is None else test)


def ever_on(config, name: str) -> bool:
  """Whether training or evaluation runs the part (so it needs parameters)."""
  return bool(config[name] or config.get('test_' + name))
