"""Placeholder: being written."""
def check_bernoulli_sampler(*args, **kwargs):
    raise NotImplementedError("check_bernoulli_sampler is being written")


def check_categorical_sampler(*args, **kwargs):
    raise NotImplementedError("check_categorical_sampler is being written")


def check_relaxed_sampler(*args, **kwargs):
    raise NotImplementedError("check_relaxed_sampler is being written")


