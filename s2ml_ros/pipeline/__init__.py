"""Inference pipeline around the S2ML network (numpy in, numpy out)."""

from .predictor import (DefaultWeightsMissingError, DepthCompletionPredictor, PRECISIONS,
                        PredictorInputError, resolve_device)
from ..registration import ColourOffset, estimate_colour_offset, shift_image

__all__ = ['ColourOffset', 'DefaultWeightsMissingError', 'DepthCompletionPredictor', 'PRECISIONS',
           'PredictorInputError', 'estimate_colour_offset', 'resolve_device', 'shift_image']
