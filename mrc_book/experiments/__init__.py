"""Experiments of the book. Each module here registers its experiments with `mrc_book.training.register_experiment`
when imported; `load_all()` imports them all (`mrc train --list` shows them). The package itself imports none, so
`python -m mrc_book.experiments.<module>` runs a module exactly once."""
import importlib as _importlib, pkgutil as _pkgutil, warnings as _warnings

IMPORT_ERRORS: dict[str, str] = {}   # module -> error, for modules that failed to import

def load_all() -> dict[str, str]:
    "Import every experiment module (registering its experiments); returns `IMPORT_ERRORS`."
    for info in _pkgutil.iter_modules(__path__, __name__ + '.'):
        if info.name in IMPORT_ERRORS: continue
        try: _importlib.import_module(info.name)
        except Exception as e:   # one broken experiment must not hide the others; `mrc train --list` reports it
            IMPORT_ERRORS[info.name] = f'{type(e).__name__}: {e}'
            _warnings.warn(f'could not import {info.name}: {IMPORT_ERRORS[info.name]}')
    return IMPORT_ERRORS
