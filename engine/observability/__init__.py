"""What a run tells its operators: logs, progress, metrics, history, reports.

- `logs`: the log (text or JSON lines), the console and the outcome line;
- `progress`: progress of a running `engine run`, live or logged;
- `metrics`: per-step and per-run time, CPU, memory and I/O figures;
- `history`: the run history (`run_history.jsonl`) and success rates;
- `prometheus_export`: the run's metrics for Prometheus (textfile, Pushgateway);
- `html_report`, `svg_charts`: the HTML run report and its charts;
- `run_monitor`: all of the above for one run, attached to it by engine.run.
"""
