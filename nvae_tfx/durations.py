"""Durations as people read them, in progress lines and summaries."""


def format_duration(seconds: float) -> str:
    """'0.4 s', '16 s', '3 min 05 s', '2 h 07 min'."""
    if seconds < 10:
        return f'{seconds:.1f} s'
    seconds = round(seconds)
    if seconds < 60:
        return f'{seconds} s'
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f'{minutes} min {seconds:02d} s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours} h {minutes:02d} min'
