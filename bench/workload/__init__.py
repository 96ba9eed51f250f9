"""Workloads beyond the scripted scenario: request traces, imported conversation datasets and
synthetic prompts of given token lengths.

``trace`` reads request logs (ours, Mooncake's, Azure's) into rows with arrival times;
``replay`` schedules those rows in a load-generating process; ``synthetic`` builds prompts of a
requested token length; ``datasets`` turns ShareGPT / OpenAI JSONL / plain-text files into
scenario files. Everything here validates before any load is sent and names file, line and field.
"""
