// Extended attributes through @napi-rs/xattr, loaded with require: importing
// a CommonJS package from ESM has Node scan its source for named exports
// first. Run over undici and this package in every pull (main thread and
// worker), that scanner became hot enough to be compiled by TurboFan three
// times; loading both with require took it out.

import { createRequire } from 'node:module';

const xattr = createRequire(import.meta.url)('@napi-rs/xattr') as typeof import('@napi-rs/xattr');

export const { getAttributeSync, setAttributeSync, listAttributesSync, removeAttributeSync } = xattr;
