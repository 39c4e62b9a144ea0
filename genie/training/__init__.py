"""A training run: what it needs before the loop (`run_setup`), its parts made in order and
handed to the loop (`run`), its folder and fingerprint (`run_folder`), the loop itself (`loop`),
and the parts the loop is made of: batches (`batching`, `sampling`), precision, several processes
(`distributed`), and what it logs (`metrics_log`, `tracking`)."""
