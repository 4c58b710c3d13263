"""Experiments of the book. Each module here registers its experiments with `mrc_book.training.register_experiment`
when imported; importing this package imports them all (`mrc train --list` shows them)."""
import importlib as _importlib, pkgutil as _pkgutil, warnings as _warnings

IMPORT_ERRORS: dict[str, str] = {}   # module -> error, for modules that failed to import

for _info in _pkgutil.iter_modules(__path__, __name__ + '.'):
    try: _importlib.import_module(_info.name)
    except Exception as _e:   # one broken experiment must not hide the others; `mrc train --list` reports it
        IMPORT_ERRORS[_info.name] = f'{type(_e).__name__}: {_e}'
        _warnings.warn(f'could not import {_info.name}: {IMPORT_ERRORS[_info.name]}')
