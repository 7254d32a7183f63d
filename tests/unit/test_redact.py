"""A sensitive job's arguments cut out of an error's text (worker/redact.py), in every spelling a message uses."""

from __future__ import annotations

from errands.jobs import ErrorInfo
from errands.worker.redact import Redactor


def test_each_argument_is_cut_out_wherever_it_appears() -> None:
    redact = Redactor(["4242-4242", 9731, 2.5], {"pin": "hunter2", "nested": [{"deep": ["s3cr3t"]}]})
    text = "card 4242-4242 pin hunter2 (9731, 2.5) s3cr3t; again 4242-4242"
    assert redact.text(text) == "card *** pin *** (***, ***) ***; again ***"


def test_the_spellings_of_repr_and_json_are_cut_too() -> None:
    secret = 'it\'s "quoted"\n été'
    redact = Redactor([secret], {})
    assert redact.text(f"str {secret} repr {secret!r}") == "str *** repr '***'"
    assert redact.text('json "it\'s \\"quoted\\"\\n \\u00e9t\\u00e9"') == 'json "***"'


def test_the_longest_secret_goes_first() -> None:
    redact = Redactor(["abc", "abcdef"], {})
    assert redact.text("abcdef abc") == "*** ***"


def test_short_values_booleans_none_and_kwarg_names_are_left_alone() -> None:
    """Replacing every "1" or "ab" would wreck a traceback's line numbers and hide nothing worth hiding."""
    redact = Redactor([1, "ab", True, None], {"password": "xy"})
    text = 'File "job.py", line 1, in ab: True None password xy'
    assert redact.text(text) == text


def test_an_int_too_long_to_print_is_skipped() -> None:
    redact = Redactor([10**5000, "secret"], {})
    assert redact.text("the secret") == "the ***"


def test_an_errors_message_and_traceback_are_redacted_its_type_kept() -> None:
    error = ErrorInfo("ValueError", "bad hunter2", "Traceback...\nValueError: bad hunter2\n", ("ValueError",))
    redacted = Redactor(["hunter2"], {}).error(error)
    assert redacted == ErrorInfo("ValueError", "bad ***", "Traceback...\nValueError: bad ***\n", ("ValueError",))
    assert Redactor(["hunter2"], {}).error(ErrorInfo("E", "hunter2")).traceback is None
