"""The import layering of vim_jax, input_pipeline and main.py.

Every module belongs to one group, and the groups are ranked:

  0  ops                                  (and vim_jax/__init__.py)
  1  models, input_pipeline, weights      beside each other
  2  steps (steps, losses, parallel, evaluate, trainer: the one training
     loop), figures
  3  weights.pretrain                     pretraining: an experiment of the
                                          one training loop
  4  train
  5  main (main.py, vim_jax.ablate, vim_jax.predict: the entry points)

A module imports modules of its own group and of lower ranks only; groups of
one rank do not import each other, except weights, which imports models. So
nothing in models imports weights or input_pipeline, input_pipeline imports
nothing of vim_jax but ops, and ops nothing above ops. No import cycle
either, within a group included. Imports inside functions count too: they
are dependencies as well.
"""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ('vim_jax', 'input_pipeline')

# Module name (or a package of them) -> group; the longest match wins.
GROUPS = {
    'vim_jax': 'vim_jax',
    'vim_jax.ops': 'ops',
    'vim_jax.models': 'models',
    'input_pipeline': 'input_pipeline',
    'vim_jax.weights': 'weights',
    'vim_jax.steps': 'steps',
    'vim_jax.losses': 'steps',
    'vim_jax.parallel': 'steps',
    'vim_jax.evaluate': 'steps',
    'vim_jax.trainer': 'steps',
    'vim_jax.figures': 'figures',
    'vim_jax.weights.pretrain': 'pretrain',
    'vim_jax.train': 'train',
    'vim_jax.predict': 'main',
    'vim_jax.ablate': 'main',
    'main': 'main',
}
RANKS = {'vim_jax': 0, 'ops': 0, 'models': 1, 'input_pipeline': 1,
         'weights': 1, 'steps': 2, 'figures': 2, 'pretrain': 3, 'train': 4,
         'main': 5}
# (importer, imported) groups of one rank that may import each other.
BESIDE = {('weights', 'models')}


def module_files() -> dict[str, pathlib.Path]:
  """{module name: file} of main.py and every module of `PACKAGES`."""
  files = {'main': ROOT / 'main.py'}
  for package in PACKAGES:
    for path in sorted((ROOT / package).rglob('*.py')):
      parts = path.relative_to(ROOT).with_suffix('').parts
      if parts[-1] == '__init__':
        parts = parts[:-1]
      files['.'.join(parts)] = path
  return files


def imports_of(name: str, path: pathlib.Path, modules) -> set[str]:
  """The modules of `modules` that module `name` imports, anywhere in it."""
  is_package = path.name == '__init__.py'
  package = name if is_package else name.rpartition('.')[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # relative: from the package, up level - 1
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      targets = [f'{base}.{alias.name}' for alias in node.names]
    else:
      continue
    for target in targets:
      # `from a.b import c`: the module a.b.c, or c is a name in module a.b.
      while target and target not in modules:
        target = target.rpartition('.')[0]
      if target and target != name:
        found.add(target)
  return found


def import_graph() -> dict[str, set[str]]:
  files = module_files()
  return {name: imports_of(name, path, files) for name, path in files.items()}


def group_of(module: str) -> str | None:
  """The group of the longest key of `GROUPS` that `module` is or lies in.

  The bare 'vim_jax' matches only itself: a new module directly under
  vim_jax/ has no group until one is given to it.
  """
  parts = module.split('.')
  for n in range(len(parts), 0, -1):
    prefix = '.'.join(parts[:n])
    if prefix in GROUPS and (prefix != 'vim_jax' or n == len(parts)):
      return GROUPS[prefix]
  return None


def violations(graph) -> list[str]:
  """'importer (group) imports imported (group)' for each forbidden import."""
  found = []
  for name, targets in sorted(graph.items()):
    group = group_of(name)
    for target in sorted(targets):
      other = group_of(target)
      if None in (group, other):  # test_every_module_has_a_group says so
        continue
      if other == group or RANKS[other] < RANKS[group] or (
          RANKS[other] == RANKS[group] and (group, other) in BESIDE):
        continue
      found.append(f'{name} ({group}, rank {RANKS[group]}) imports {target} '
                   f'({other}, rank {RANKS[other]})')
  return found


def find_cycle(graph) -> list[str] | None:
  """One import cycle [a, b, ..., a] of `graph`, or None."""
  state, stack = {}, []  # state: 1 on the stack, 2 done

  def visit(name):
    state[name] = 1
    stack.append(name)
    for target in sorted(graph.get(name, ())):
      if state.get(target) == 1:
        return stack[stack.index(target):] + [target]
      if target not in state:
        cycle = visit(target)
        if cycle:
          return cycle
    stack.pop()
    state[name] = 2
    return None

  for name in sorted(graph):
    if name not in state:
      cycle = visit(name)
      if cycle:
        return cycle
  return None


def test_every_module_has_a_group():
  unassigned = [name for name in module_files() if group_of(name) is None]
  assert not unassigned, (
      f'{unassigned}: give each a group in tests/test_layering.py GROUPS')
  assert set(GROUPS.values()) == set(RANKS)


def test_imports_follow_the_layers():
  graph = import_graph()
  # The parse sees the imports that the layering is about.
  assert 'vim_jax.models.resnet' in graph['vim_jax.weights.folder']
  assert 'vim_jax.ops.frames' in graph['input_pipeline.episodes']
  assert 'vim_jax.weights.load' in graph['vim_jax.train']
  bad = violations(graph)
  assert not bad, 'Imports against the layering:\n' + '\n'.join(bad)


def test_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, 'Import cycle: ' + ' -> '.join(cycle)


def test_the_checks_catch_bad_imports():
  """Each rule rejects a forbidden import (the checks are not vacuous)."""
  for importer, imported in [
      ('vim_jax.models.few_shot', 'vim_jax.weights.load'),
      ('vim_jax.models.sampler', 'input_pipeline.episodes'),
      ('input_pipeline.episodes', 'vim_jax.models.few_shot'),
      ('input_pipeline.datasets', 'vim_jax.weights.folder'),
      ('vim_jax.weights.folder', 'input_pipeline.datasets'),
      ('vim_jax.weights.load', 'vim_jax.weights.pretrain'),
      ('vim_jax.ops.frames', 'vim_jax.models.resnet'),
      ('vim_jax.steps', 'vim_jax.train'),
      ('vim_jax.weights.pretrain', 'vim_jax.train'),
      ('vim_jax.train', 'vim_jax.predict')]:
    assert violations({importer: {imported}}), (importer, imported)
  assert not violations({'vim_jax.weights.load': {'vim_jax.models.few_shot'},
                         'vim_jax.train': {'vim_jax.weights.pretrain'}})
  graph = {'vim_jax.models.a': {'vim_jax.models.b'},
           'vim_jax.models.b': {'vim_jax.models.c'},
           'vim_jax.models.c': {'vim_jax.models.a'}}
  assert find_cycle(graph) == ['vim_jax.models.a', 'vim_jax.models.b',
                               'vim_jax.models.c', 'vim_jax.models.a']
  del graph['vim_jax.models.c']
  assert find_cycle(graph) is None
