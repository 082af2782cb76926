"""Benchmark and load run: our Wyoming server against upstream f5-tts (``script/bench``, see __main__)."""
