/**
 * @userpref/pickle: read Python pickles without executing anything. See README.md.
 */
export { PickleError } from './errors';
export { unpickle, unpickleAt, unpickleFile } from './unpickler';
export type { UnpickleOptions, FileUnpickleOptions, UnpickleResult } from './unpickler';
export { PickleFile, LazyBytes } from './source';
export { readDataFrame } from './dataframe';
export type { DataFrame, DataFrameOptions } from './dataframe';
export { loadTorchFile, findTensor, torchStateDict } from './torch-file';
export type { TorchLoadOptions } from './torch-file';
export { TorchTensor, TorchStorage, TorchStorageType, TorchDtypeRef } from './globals/torch';
export type { TorchDtype } from './globals/torch';
export { NumpyArray, NumpyDtype } from './globals/numpy';
export { ArrowArray } from './globals/pyarrow';
export { PandasIndex, PandasBlock, PandasBlockManager } from './globals/pandas';
export { PyObject, PyGlobal, PySlice, PyComplex, bytesValue, isOrderedDict, pyAttributes } from './python';
export { WHITELIST } from './globals';
export type { NumericArray, ElementType } from './typed';
