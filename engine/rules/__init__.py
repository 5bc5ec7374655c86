"""The business rules every row and figure is held to, whatever the execution mode.

- `validation`: the row rules of SPEC §3 (which rows are kept, and why the others are
  rejected) and the input's columns;
- `exact`: exact money and ratio arithmetic, and the one place values are rounded;
- `alerts`: the data-quality alerts and their thresholds (SPEC §4);
- `pseudonyms`: customer ids replaced by keyed pseudonyms (never in clear in a
  rejected-rows file or an anonymised copy).

It depends on nothing of the engine but `engine.errors`.
"""
