"""The ``petcap`` sub-commands, by stage; ``flows.cli`` holds the parser and the one-line errors.

    common        settings from the arguments; a flow run with a Prefect server, plain calls without one
    data_stages   synth, realism, pull, ingest, structure, structure-eval, link, link-eval, withdraw, refresh,
                  extract-patches, split
    model_stages  train, evaluate, promote, benchmark, demo
    caption       caption (one study, or a correction of one lesion)

Each command parses nothing itself: it gets argparse's namespace, runs its up-front checks (``flows.preflight``)
before the heavy imports (imports are local, so ``petcap --help`` stays fast), calls a stage and prints.
"""
