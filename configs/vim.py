"""VIM and its ablations (paper Tables 4, 5, 11, 12, 14, 16, 17), one row each.

`get_config('row=ROW,base=BASE,way=N,shot=K,query=Q')` is the base config
(configs/synthetic.py; configs/test.py with base=test; configs/default.py with
base=default) with every module switched off (ProtoNet: T uniform frames, no
alignment; `MODULES_OFF`), then the overrides of one row of `ROWS`. Every
other field, the MI estimators and the loss reduction included, is the
base's. way/shot/query default to the base's.

Rows (TS temporal selector, SA spatial amplifier, Ada task-adaptive learner,
TT temporal transformation, TR temporal rearrangement, TC = TT + TR, SC
spatial coordination; mu1 weighs L_intra, mu2 L_inter):

  Table 4 (main components)
    baseline          ProtoNet: everything off
    sampler           sampler (TS + SA + Ada), no MI loss
    sampler_intra     sampler + L_intra (mu1 = 1)
    alignment         alignment (TC + SC), no MI loss
    alignment_inter   alignment + L_inter (mu2 = 1)
    both              sampler + alignment, no MI loss
    both_intra        sampler + alignment + L_intra (mu1 = 1, mu2 = 0; also
                      Table 16's first row)
    both_inter        sampler + alignment + L_inter (mu1 = 0, mu2 = 1; also
                      Table 16's second row)
    full              VIM: everything, mu1 = 0.5, mu2 = 1
  Table 5 (breakdown; each module with its MI loss, as the table's rows with
  all of a component's modules equal Table 4's rows with the loss)
    ts_only, sa_only, ts_sa, ts_ada, sa_ada     sampler parts, + L_intra
    tc, sc                                      alignment parts, + L_inter
    full_no_ts, full_no_sa, full_no_tc, full_no_sc   VIM minus one module
  Table 3 (VIM on other methods)
    otam, trx, hyrsm    the OTAM, TRX and HyRSM metrics in place of
                        ProtoNet's (vim_jax/models/heads.py), uniform
                        frames, no alignment
    otam_vim, trx_vim, hyrsm_vim   full VIM (as `full`) with that metric:
                        the head compares each class's aligned query with
                        the class's support videos as aligned
                        (vim_jax/models/few_shot.py `aligned_logits`)
  Table 11: mgsampler   ProtoNet + MGSampler frames (no SA, no loss)
  Table 12: tt_only, tr_only   one half of TC, + L_inter (tc is both halves)
  Table 14: sc_first    VIM with SC before TC
            alignment_sc_first   the alignment row with SC before TC
  Table 16: mu_1_0.5, mu_1_1   VIM with (mu1, mu2) = (1, 0.5), (1, 1)
  Table 17 (test-time isolation: trained as `full`, a module removed at test)
    full_test_no_sampler     TS, SA and Ada off at test: the T frames are the
                             uniform ones (segment centres of the M dense
                             frames), unamplified
    full_test_no_alignment   TT, TR and SC off at test: plain frame-wise
                             cosine on the unaligned features

Run one row (train, validate, test):
  python main.py --config=configs/vim.py:row=full,shot=5 --workdir=/tmp/vim_full_5shot
  python main.py --config=configs/vim.py:row=baseline,base=test --workdir=/tmp/vim_b
Run several rows and tabulate them (vim_jax/ablate.py):
  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/ablate \\
      --rows=baseline,sampler,sampler_intra,alignment,alignment_inter,both,full
Table 3 on the procedural data (add --shot=5 for its 5-shot column):
  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/table3 \\
      --rows=otam,otam_vim,trx,trx_vim,hyrsm,hyrsm_vim
Fig. 20 (many-way 1-shot: trained at 5-way, tested at 5..10-way):
  python -m vim_jax.ablate --config=configs/vim.py --workdir=/tmp/fig20 \\
      --rows=baseline,otam,hyrsm,full --test_ways=6,7,8,9,10
"""
from configs import default
from configs import synthetic
from configs import test

BASES = {'synthetic': synthetic, 'test': test, 'default': default}

_SAMPLER = {'model.sampler.enabled': True}
_TT = {'model.alignment.transform': True}
_TR = {'model.alignment.rearrange': True}
_TC = {**_TT, **_TR}
_SC = {'model.alignment.spatial': True}
_ALIGNMENT = {**_TC, **_SC}
_NO_TS = {'model.sampler.temporal': False}
_NO_SA = {'model.sampler.spatial': False}
_NO_ADA = {'model.sampler.adaptive': False}


def _mu(mu1, mu2):
  return {'train.mu1': float(mu1), 'train.mu2': float(mu2)}


_FULL = {**_SAMPLER, **_ALIGNMENT, **_mu(0.5, 1)}

# row -> overrides of the base config (flattened field names).
ROWS = {
    # Table 4.
    'baseline': _mu(0, 0),
    'sampler': {**_SAMPLER, **_mu(0, 0)},
    'sampler_intra': {**_SAMPLER, **_mu(1, 0)},
    'alignment': {**_ALIGNMENT, **_mu(0, 0)},
    'alignment_inter': {**_ALIGNMENT, **_mu(0, 1)},
    'both': {**_SAMPLER, **_ALIGNMENT, **_mu(0, 0)},
    'both_intra': {**_SAMPLER, **_ALIGNMENT, **_mu(1, 0)},
    'both_inter': {**_SAMPLER, **_ALIGNMENT, **_mu(0, 1)},
    'full': _FULL,
    # Table 5.
    'ts_only': {**_SAMPLER, **_NO_SA, **_NO_ADA, **_mu(1, 0)},
    'sa_only': {**_SAMPLER, **_NO_TS, **_NO_ADA, **_mu(1, 0)},
    'ts_sa': {**_SAMPLER, **_NO_ADA, **_mu(1, 0)},
    'ts_ada': {**_SAMPLER, **_NO_SA, **_mu(1, 0)},
    'sa_ada': {**_SAMPLER, **_NO_TS, **_mu(1, 0)},
    'tc': {**_TC, **_mu(0, 1)},
    'sc': {**_SC, **_mu(0, 1)},
    'full_no_ts': {**_FULL, **_NO_TS},
    'full_no_sa': {**_FULL, **_NO_SA},
    'full_no_tc': {**_FULL, 'model.alignment.transform': False,
                   'model.alignment.rearrange': False},
    'full_no_sc': {**_FULL, 'model.alignment.spatial': False},
    # Table 3: the OTAM, TRX and HyRSM metrics on uniform frames, and VIM
    # in front of each.
    'otam': {'model.head': 'otam', **_mu(0, 0)},
    'trx': {'model.head': 'trx', **_mu(0, 0)},
    'hyrsm': {'model.head': 'hyrsm', **_mu(0, 0)},
    'otam_vim': {**_FULL, 'model.head': 'otam'},
    'trx_vim': {**_FULL, 'model.head': 'trx'},
    'hyrsm_vim': {**_FULL, 'model.head': 'hyrsm'},
    # Table 11.
    'mgsampler': {**_SAMPLER, 'model.sampler.method': 'mgsampler',
                  **_mu(0, 0)},
    # Table 12.
    'tt_only': {**_TT, **_mu(0, 1)},
    'tr_only': {**_TR, **_mu(0, 1)},
    # Table 14.
    'sc_first': {**_FULL, 'model.alignment.order': 'spatial_first'},
    'alignment_sc_first': {**_ALIGNMENT, **_mu(0, 0),
                           'model.alignment.order': 'spatial_first'},
    # Table 16.
    'mu_1_0.5': {**_FULL, **_mu(1, 0.5)},
    'mu_1_1': {**_FULL, **_mu(1, 1)},
    # Table 17.
    'full_test_no_sampler': {
        **_FULL, 'model.sampler.test_temporal': False,
        'model.sampler.test_spatial': False,
        'model.sampler.test_adaptive': False},
    'full_test_no_alignment': {
        **_FULL, 'model.alignment.test_transform': False,
        'model.alignment.test_rearrange': False,
        'model.alignment.test_spatial': False},
}

# Table 4's rows, in the table's order (vim_jax/ablate.py's default).
TABLE_4 = ('baseline', 'sampler', 'sampler_intra', 'alignment',
           'alignment_inter', 'both', 'both_intra', 'both_inter', 'full')


def apply_overrides(config, overrides):
  """Sets flattened fields ('train.mu1': 0.5); a missing field is an error."""
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split('.')
    for parent in parents:
      node = node[parent]
    if leaf not in node:
      raise KeyError(f'{key}: no such config field.')
    node[leaf] = value
  return config


# Applied before a row's overrides: the base may be full VIM.
MODULES_OFF = {'model.head': 'protonet',
               'model.sampler.enabled': False,
               'model.alignment.transform': False,
               'model.alignment.rearrange': False,
               'model.alignment.spatial': False}


def get_config(arg=None):
  """The base config with one row's overrides (see the module docstring)."""
  args = default.parse_arg(arg, row='full', base='synthetic', way=0, shot=0,
                           query=0)
  if args['row'] not in ROWS:
    raise ValueError(f'Config argument row={args["row"]!r}: one of '
                     f'{sorted(ROWS)}.')
  if args['base'] not in BASES:
    raise ValueError(f'Config argument base={args["base"]!r}: one of '
                     f'{sorted(BASES)}.')
  episode = ','.join(f'{key}={args[key]}' for key in ('way', 'shot', 'query')
                     if args[key])
  config = BASES[args['base']].get_config(episode or None)
  return apply_overrides(config, {**MODULES_OFF, **ROWS[args['row']]})
