"""Inference pipeline around the S2ML network (numpy in, numpy out)."""

from .predictor import (DefaultWeightsMissingError, DepthCompletionPredictor,
                        initial_fill_image, PRECISIONS, PredictorInputError, resolve_device)
from ..registration import ColourOffset, estimate_colour_offset, shift_image

__all__ = ['ColourOffset', 'DefaultWeightsMissingError', 'DepthCompletionPredictor',
           'estimate_colour_offset', 'initial_fill_image', 'PRECISIONS', 'PredictorInputError',
           'resolve_device', 'shift_image']
