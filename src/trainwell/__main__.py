"""``python -m trainwell``: the ``trainwell`` command (:mod:`trainwell.cli`)."""

if __name__ == "__main__":
    from trainwell.cli import main

    raise SystemExit(main())
