"""Examples quoted from the spec (pai-judge-api-en.txt), shared by the server tests."""

QUESTION = ("According to the first couplet, give the second couplet. first couplet: "
            "To climb the mountain, reach the peak")
# Step 1 of the spec, verbatim, as a real two-line JSONL file.
SPEC_JSONL = (
    '{"custom_id": "request-1", "body": {"model": "pai-judge", "messages": [{"role": "user", "content": [{"mode": '
    '"single", "type": "json", "json": {"question": "' + QUESTION + '", "answer": "To cross the river, find the '
    'creek."}}]}]}}\n'
    '{"custom_id": "request-2", "body": {"model": "pai-judge-plus", "messages": [{"role": "user", "content": [{"mode": '
    '"single", "type": "json", "json": {"question": "' + QUESTION + '", "answer": "To cross the river, find the '
    'creek."}}]}]}}\n'
).encode()
