// asl-validator 4.0.0 ships no types; this is the part of its API the tests use
// (node_modules/asl-validator/dist/src/validator.js: `module.exports = function validator(definition, opts)`).
declare module 'asl-validator' {
  interface AslValidatorOptions {
    checkPaths?: boolean;
    checkArn?: boolean;
  }
  interface AslValidatorError {
    'Error code': string;
    Message: string;
    path?: string;
  }
  function aslValidator(definition: unknown, opts?: AslValidatorOptions): { isValid: boolean; errors: AslValidatorError[]; errorsText: (separator?: string) => string };
  export = aslValidator;
}
