from builder.cli import main

# Guarded: vLLM starts its engine core with spawn, which imports this module again as
# `__mp_main__`; unguarded, that child would run the command a second time.
if __name__ == "__main__":
    raise SystemExit(main())
