"""Placeholder: being written."""
def check_log_prob(*args, **kwargs):
    raise NotImplementedError("check_log_prob is being written")


