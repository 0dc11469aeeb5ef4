import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import ts from 'typescript';
import { renderError, type ErrorStyle } from '#http/errors.ts';
import * as z from '#core/util/zod.ts';
import { type FunctionName, handlerKey, type RouteSpec, routes } from './routes.ts';

/**
 * The OpenAPI 3.1 document of every Slipway surface, GENERATED, never written by hand (issue 15):
 * paths, methods and auth from the route table (`infra/routes.ts`); for each route, what its
 * handler in `functions/api/<fn>.ts` does, read with the TypeScript compiler: the zod schema it
 * parses the body or query with (`parseWith(Schema, body)` in the handler, or `Schema.safeParse`
 * in the use-case it hands the raw body to, one call deep) turned into JSON Schema by
 * `z.toJSONSchema`; the reply helpers it answers with (`ok` 200, `created` 201, ...) and the
 * TypeScript type of the body it passes them (the views' return types), turned into JSON Schema;
 * the error format of its surface (`surface({ style })`, bodies as `renderError` writes them).
 *
 * NOTE(openapi): generated at build time and committed, not at bundling time nor at run time.
 * Reading the handlers takes the TypeScript compiler (seconds, and 9 MB that must never reach a
 * Lambda); a reviewer sees every API change as a diff of the readable document
 * (`layers/http/openapi.json`). The system function serves the same document from its gzipped
 * twin (`layers/http/openapi-gzip.ts`): inlined as JSON it weighed 130 of the function's 150 KiB
 * (measured at 86 paths) and grows with every route; gzipped, the whole function is 39 KiB at
 * 147 operations (test/infra/bundle.test.ts prints it). The local
 * server serves it through the same function. `npm run openapi` writes both files;
 * test/unit/openapi.test.ts fails when either differs from what this generator makes of the
 * current code.
 */

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const OPENAPI_FILE = join(REPO_ROOT, 'layers/http/openapi.json');
export const OPENAPI_GZIP_FILE = join(REPO_ROOT, 'layers/http/openapi-gzip.ts');

/** One tag per surface; a surface added to the route table without an entry here is named by its function. */
const TAGS: Partial<Record<FunctionName, string>> = {
  blazar: 'Blazar',
  ironic: 'Ironic',
  drydock: 'Drydock',
  commissaire: 'Commissaire',
  native: 'native',
  agent: 'agent',
  bootactions: 'bootactions',
  system: 'system',
  identity: 'identity',
};
export const tagOf = (fn: string): string => TAGS[fn as FunctionName] ?? fn;

/**
 * Catch-all routes (`ANY …{proxy+}` and the `ANY` twins of real paths) are left out: they are no
 * operation a client calls, only where API Gateway sends unknown paths and wrong methods so that
 * the surface answers 404/405 in its own error format. `.json` twins (Blazar, native) are folded
 * into their route (`x-slipway-json-suffix`).
 */
export const isDocumented = (r: RouteSpec): boolean => r.method !== 'ANY';
export const isJsonTwin = (r: RouteSpec, table: readonly RouteSpec[] = routes): boolean =>
  r.path.endsWith('.json') && table.some((t) => t.method === r.method && `${t.path}.json` === r.path);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Schema = { [k: string]: Json };

// ---------------------------------------------------------------------------------------------
// Reading the surfaces with the TypeScript compiler

/** What a surface's source tells about one handler. */
interface HandlerFacts {
  /** Leading comment of the handler's entry, if any. */
  comment?: string;
  /** status (or `2XX` when the code decides at run time) → body types, media type, response headers. */
  replies: Map<string, { types: ts.Type[]; media?: string; headers: Set<string> }>;
  /** Request headers the handler (or its surface's `before` hook) reads, lower case. */
  requestHeaders: Set<string>;
  /** Query parameters the handler reads by name (`query.limit`), besides a zod query schema's. */
  queryNames: Set<string>;
  body?: { file: string; name: string };
  query?: { file: string; name: string };
  /** The raw body is handed on as text (`rawBody`). */
  rawBody: boolean;
}

interface SurfaceFacts {
  fn: string;
  style: ErrorStyle;
  /** Every route also answers with `.json` appended (`surface({ jsonSuffix: true })`). */
  jsonSuffix: boolean;
  /** `Authorization: Basic` with a user's name and password is accepted too (`surface({ basicUsers })`). */
  basicUsers: boolean;
  anonymous: string[];
  description?: string;
  handlers: Map<string, HandlerFacts>;
}

type Add = (status: string, type: ts.Type | undefined, media?: string, headers?: ts.Expression) => void;

const REPLY_STATUS: Record<string, string> = { ok: '200', created: '201', accepted: '202', noContent: '204', raw: '200', redirect: '302' };

function program(files: string[]): ts.Program {
  const config = ts.readConfigFile(join(REPO_ROOT, 'tsconfig.json'), ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, REPO_ROOT);
  return ts.createProgram(files, { ...parsed.options, noEmit: true });
}

const stringValue = (e: ts.Expression | undefined): string | undefined =>
  e && (ts.isStringLiteral(e) || ts.isNoSubstitutionTemplateLiteral(e)) ? e.text : undefined;

function comments(node: ts.Node): string | undefined {
  const sf = node.getSourceFile();
  const ranges = ts.getLeadingCommentRanges(sf.text, node.getFullStart()) ?? [];
  const text = ranges
    .map((r) => sf.text.slice(r.pos, r.end))
    .map((c) => c.replace(/^\/\*\*?|\*\/$/g, '').replace(/^\s*\/\/ ?/gm, '').replace(/^\s*\* ?/gm, '').trim())
    .join('\n')
    .trim();
  return text ? text.replace(/\s*\n\s*/g, ' ') : undefined;
}

class SurfaceReader {
  constructor(
    private readonly checker: ts.TypeChecker,
    private readonly sf: ts.SourceFile,
  ) {}

  /** The declaration an identifier stands for, through imports. */
  private declaration(id: ts.Node): ts.Declaration | undefined {
    let sym = this.checker.getSymbolAtLocation(id);
    if (sym && sym.flags & ts.SymbolFlags.Alias) sym = this.checker.getAliasedSymbol(sym);
    return sym?.valueDeclaration ?? sym?.declarations?.[0];
  }

  /** The module and export name of a zod schema named at `id` (it must be exported: the generator imports it). */
  private schemaRef(id: ts.Expression, env: Record<string, string> = {}): { file: string; name: string } {
    // A local pick between schemas (`kind === 'deploy' ? DeployPut : OperationPut`), with the
    // handler's bound parameters.
    if (ts.isConditionalExpression(id)) {
      const c = id.condition;
      if (ts.isBinaryExpression(c) && c.operatorToken.kind === ts.SyntaxKind.EqualsEqualsEqualsToken && env[c.left.getText()] !== undefined && stringValue(c.right) !== undefined) {
        return this.schemaRef(env[c.left.getText()] === stringValue(c.right) ? id.whenTrue : id.whenFalse, env);
      }
    }
    const local = ts.isIdentifier(id) ? this.declaration(id) : undefined;
    if (local && ts.isVariableDeclaration(local) && local.getSourceFile() === this.sf && local.initializer && (ts.isConditionalExpression(local.initializer) || ts.isIdentifier(local.initializer))) {
      return this.schemaRef(local.initializer, env);
    }
    const decl = this.declaration(id);
    if (!decl || !ts.isVariableDeclaration(decl) || !ts.isIdentifier(decl.name)) throw new Error(`openapi: cannot resolve schema ${id.getText()} in ${this.sf.fileName}`);
    return { file: decl.getSourceFile().fileName, name: decl.name.text };
  }

  read(fn: string): SurfaceFacts {
    const call = this.surfaceCall();
    const [optionsArg, tableArg] = call.arguments;
    if (!optionsArg || !ts.isObjectLiteralExpression(optionsArg) || !tableArg) throw new Error(`openapi: ${this.sf.fileName}: surface() options must be an object literal`);
    const option = (name: string): ts.Expression | undefined => {
      const p = optionsArg.properties.find((x) => (ts.isPropertyAssignment(x) || ts.isShorthandPropertyAssignment(x)) && x.name.getText() === name);
      return p && (ts.isPropertyAssignment(p) ? p.initializer : (p as ts.ShorthandPropertyAssignment).name);
    };
    const style = stringValue(option('style')) as ErrorStyle | undefined;
    if (!style) throw new Error(`openapi: ${this.sf.fileName}: surface() has no literal style`);
    const handlers = new Map<string, HandlerFacts>();
    const raw = this.keysOf(option('rawBody'));
    const before = option('before');
    for (const [key, expr, entry, env] of this.entries(tableArg, {})) handlers.set(key, this.handler(expr, entry, raw.includes(key), env, before));
    // The surface's description: the comment on its handler, else the one that opens the module
    // (Blazar's, Ironic's and others' sit on the first declaration after the imports).
    const statement = call.parent && ts.isVariableDeclaration(call.parent) ? call.parent.parent.parent : undefined;
    const first = this.sf.statements.find((st) => !ts.isImportDeclaration(st));
    const description = (statement && comments(statement)) ?? (first && comments(first));
    const jsonSuffix = option('jsonSuffix')?.kind === ts.SyntaxKind.TrueKeyword;
    return { fn, style, jsonSuffix, basicUsers: option('basicUsers') !== undefined, anonymous: this.keysOf(option('anonymous')), ...(description ? { description } : {}), handlers };
  }

  private surfaceCall(): ts.CallExpression {
    let found: ts.CallExpression | undefined;
    const visit = (n: ts.Node) => {
      if (ts.isCallExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'surface') found ??= n;
      ts.forEachChild(n, visit);
    };
    visit(this.sf);
    if (!found) throw new Error(`openapi: no surface() call in ${this.sf.fileName}`);
    return found;
  }

  /** Route keys of an `anonymous` / `rawBody` option: a literal array, or `Object.keys(OBJ)`. */
  private keysOf(e: ts.Expression | undefined): string[] {
    if (!e) return [];
    if (ts.isArrayLiteralExpression(e)) return e.elements.map((x) => stringValue(x)).filter((x): x is string => x !== undefined);
    if (ts.isCallExpression(e) && e.expression.getText() === 'Object.keys' && e.arguments[0]) {
      return this.entries(e.arguments[0], {}).map(([k]) => k);
    }
    throw new Error(`openapi: ${this.sf.fileName}: cannot read route keys from ${e.getText()}`);
  }

  /** A route key: a literal, or a template with its `${param}`s bound (`${kind}` of `operationRoutes('deploy')`). */
  private keyText(name: ts.PropertyName, env: Record<string, string>): string | undefined {
    if (ts.isComputedPropertyName(name)) return this.templateKey(name.expression, env);
    return ts.isStringLiteral(name) || ts.isNoSubstitutionTemplateLiteral(name) || ts.isIdentifier(name) ? name.text : undefined;
  }

  /**
   * The entries of a handler table: literal keys, spreads of a local object or of a local
   * function's returned object (its parameters bound to the call's literal arguments), and
   * `table[`${verb} …`] = …` assignments in a `for (const verb of [...])` loop.
   */
  private entries(e: ts.Expression, env: Record<string, string>): [string, ts.Expression, ts.Node, Record<string, string>][] {
    const out: [string, ts.Expression, ts.Node, Record<string, string>][] = [];
    if (ts.isParenthesizedExpression(e) || ts.isAsExpression(e)) return this.entries(e.expression, env);
    if (ts.isIdentifier(e)) {
      const d = this.declaration(e);
      if (d && ts.isVariableDeclaration(d) && d.initializer) return this.entries(d.initializer, env);
    }
    if (ts.isCallExpression(e)) {
      const d = this.declaration(e.expression);
      if (d && ts.isFunctionDeclaration(d) && d.body) {
        const inner = { ...env };
        d.parameters.forEach((p, i) => {
          const v = stringValue(e.arguments[i]);
          if (v !== undefined && ts.isIdentifier(p.name)) inner[p.name.text] = v;
        });
        for (const st of d.body.statements) {
          if (ts.isReturnStatement(st) && st.expression && ts.isObjectLiteralExpression(st.expression)) out.push(...this.entries(st.expression, inner));
          if (ts.isForOfStatement(st)) out.push(...this.loopEntries(st, inner));
        }
        return out;
      }
    }
    if (!ts.isObjectLiteralExpression(e)) throw new Error(`openapi: ${this.sf.fileName}: cannot read handler table ${e.getText().slice(0, 60)}`);
    for (const p of e.properties) {
      if (ts.isSpreadAssignment(p)) out.push(...this.entries(p.expression, env));
      else if (ts.isPropertyAssignment(p)) {
        const key = this.keyText(p.name, env);
        if (key === undefined) throw new Error(`openapi: ${this.sf.fileName}: cannot read route key ${p.name.getText()}`);
        out.push([key, p.initializer, p, env]);
      }
    }
    return out;
  }

  private loopEntries(loop: ts.ForOfStatement, env: Record<string, string>): [string, ts.Expression, ts.Node, Record<string, string>][] {
    const list = loop.expression;
    const arr = ts.isAsExpression(list) ? list.expression : list;
    const decl = ts.isVariableDeclarationList(loop.initializer) ? loop.initializer.declarations[0] : undefined;
    if (!decl || !ts.isIdentifier(decl.name) || !ts.isArrayLiteralExpression(arr)) return [];
    const out: [string, ts.Expression, ts.Node, Record<string, string>][] = [];
    for (const el of arr.elements) {
      const v = stringValue(el);
      if (v === undefined) continue;
      const inner = { ...env, [decl.name.text]: v };
      const visit = (n: ts.Node) => {
        if (ts.isBinaryExpression(n) && n.operatorToken.kind === ts.SyntaxKind.EqualsToken && ts.isElementAccessExpression(n.left)) {
          const key = this.templateKey(n.left.argumentExpression, inner);
          if (key) out.push([key, n.right, n, inner]);
        }
        ts.forEachChild(n, visit);
      };
      visit(loop.statement);
    }
    return out;
  }

  private templateKey(e: ts.Expression, env: Record<string, string>): string | undefined {
    if (ts.isIdentifier(e)) return env[e.text];
    if (!ts.isTemplateExpression(e)) return stringValue(e);
    let out = e.head.text;
    for (const span of e.templateSpans) {
      const v = env[span.expression.getText()];
      if (v === undefined) return undefined;
      out += v + span.literal.text;
    }
    return out;
  }

  /**
   * The code a handler runs in this file: its own expression and, transitively, the local
   * functions and constants it names (`nodeList(false)`, `report`, `passthruReply`).
   */
  private reach(expr: ts.Node): ts.Node[] {
    const seen = new Set<ts.Node>([expr]);
    const queue: ts.Node[] = [expr];
    while (queue.length) {
      const n = queue.shift()!;
      const visit = (c: ts.Node) => {
        if (ts.isIdentifier(c)) {
          const d = this.declaration(c);
          if (d && d.getSourceFile() === this.sf && (ts.isFunctionDeclaration(d) || (ts.isVariableDeclaration(d) && d.initializer && ts.isVariableStatement(d.parent.parent) && d.parent.parent.parent === this.sf))) {
            const body = ts.isFunctionDeclaration(d) ? d.body : d.initializer;
            if (body && !seen.has(body) && d !== this.surfaceDeclaration()) {
              seen.add(body);
              queue.push(body);
            }
          }
        }
        ts.forEachChild(c, visit);
      };
      visit(n);
    }
    return [...seen];
  }

  private surfaceDecl: ts.Node | undefined | null = null;
  private surfaceDeclaration(): ts.Node | undefined {
    if (this.surfaceDecl === null) {
      const call = this.surfaceCall();
      this.surfaceDecl = ts.isVariableDeclaration(call.parent) ? call.parent : undefined;
    }
    return this.surfaceDecl;
  }

  private handler(expr: ts.Expression, entry: ts.Node, rawBody: boolean, env: Record<string, string>, before: ts.Expression | undefined): HandlerFacts {
    const facts: HandlerFacts = { replies: new Map(), rawBody, requestHeaders: new Set(), queryNames: new Set() };
    const comment = comments(entry);
    if (comment) facts.comment = comment;
    const add: Add = (status, type, media, headers) => {
      const r = facts.replies.get(status) ?? { types: [], headers: new Set<string>() };
      if (type) r.types.push(type);
      if (media) r.media = media;
      for (const h of headers ? this.headerNames(headers) : []) r.headers.add(h);
      facts.replies.set(status, r);
    };
    for (const root of [...this.reach(expr), ...(before ? this.reach(before) : [])]) {
      const visit = (n: ts.Node) => {
        if (ts.isCallExpression(n)) this.call(n, facts, add, env);
        // `req.headers['x-bootaction-key']`: a request header the handler reads.
        if (ts.isElementAccessExpression(n) && /\bheaders$/.test(n.expression.getText())) {
          const name = stringValue(n.argumentExpression);
          if (name) facts.requestHeaders.add(name.toLowerCase());
        }
        // `query.limit`, `req.query.marker`: a query parameter the handler reads.
        if (ts.isPropertyAccessExpression(n) && /^(req\.)?query$/.test(n.expression.getText())) facts.queryNames.add(n.name.text);
        // A reply written out: `{ statusCode: code, body }` (Drydock's validatedesign), `{ statusCode: 304, headers }`.
        if (ts.isObjectLiteralExpression(n)) {
          const prop = (name: string) => n.properties.find((p) => (ts.isPropertyAssignment(p) || ts.isShorthandPropertyAssignment(p)) && p.name.getText() === name);
          const sc = prop('statusCode');
          const body = prop('body');
          const headers = prop('headers');
          if (sc && ts.isPropertyAssignment(sc)) {
            const status = ts.isNumericLiteral(sc.initializer) ? sc.initializer.text : '2XX';
            const valueOf = (p: ts.ObjectLiteralElementLike) => (ts.isPropertyAssignment(p) ? p.initializer : (p as ts.ShorthandPropertyAssignment).name);
            add(status, body ? this.checker.getTypeAtLocation(valueOf(body)) : undefined, undefined, headers ? valueOf(headers) : undefined);
          }
        }
        ts.forEachChild(n, visit);
      };
      visit(root);
    }
    return facts;
  }

  /** The header names of a headers argument: an object literal, through spreads and local constants. */
  private headerNames(e: ts.Expression, depth = 0): string[] {
    if (depth > 4) return [];
    if (ts.isIdentifier(e)) {
      const d = this.declaration(e);
      return d && ts.isVariableDeclaration(d) && d.initializer ? this.headerNames(d.initializer, depth + 1) : [];
    }
    if (!ts.isObjectLiteralExpression(e)) return [];
    return e.properties.flatMap((p) => {
      if (ts.isSpreadAssignment(p)) return this.headerNames(p.expression, depth + 1);
      if (ts.isPropertyAssignment(p) || ts.isShorthandPropertyAssignment(p)) {
        const n = ts.isPropertyAssignment(p) ? this.keyText(p.name, {}) : p.name.text;
        return n ? [n] : [];
      }
      return [];
    });
  }

  private call(n: ts.CallExpression, facts: HandlerFacts, add: Add, env: Record<string, string>): void {
    const callee = n.expression;
    const name = ts.isIdentifier(callee) ? callee.text : undefined;
    const decl = ts.isIdentifier(callee) ? this.declaration(callee) : undefined;
    const from = decl?.getSourceFile().fileName ?? '';
    if (name && REPLY_STATUS[name] && from.endsWith('layers/http/surface.ts')) {
      const arg = n.arguments[0];
      const bodyless = name === 'noContent' || name === 'redirect' || (arg && arg.kind === ts.SyntaxKind.UndefinedKeyword) || (arg && ts.isIdentifier(arg) && arg.text === 'undefined');
      // raw(body, contentType, headers); the others (body, headers); redirect(location, headers).
      if (name === 'raw') add('200', undefined, stringValue(n.arguments[1]) ?? '*/*', n.arguments[2]);
      else add(REPLY_STATUS[name]!, bodyless || !arg ? undefined : this.checker.getTypeAtLocation(arg), undefined, name === 'noContent' ? undefined : n.arguments[1]);
      return;
    }
    if (name === 'parseWith' && from.endsWith('layers/http/validate.ts')) {
      const [schema, input] = n.arguments;
      if (!schema || !input) return;
      if (/\bquery\b/.test(input.getText())) facts.query = this.schemaRef(schema, env);
      else if (/\bbody\b/.test(input.getText())) facts.body = this.schemaRef(schema, env);
      return;
    }
    // The raw body handed to a use-case: the schema that use-case parses that parameter with.
    const at = n.arguments.findIndex((a) => /^(req\.)?body$/.test(a.getText()));
    if (at < 0 || facts.body || !decl || !(ts.isFunctionDeclaration(decl) || ts.isVariableDeclaration(decl)) || !/\/layers\/core\//.test(from)) return;
    const fnNode = ts.isFunctionDeclaration(decl) ? decl : decl.initializer;
    if (!fnNode || !(ts.isFunctionDeclaration(fnNode) || ts.isArrowFunction(fnNode) || ts.isFunctionExpression(fnNode)) || !fnNode.body) return;
    const param = fnNode.parameters[at]?.name;
    if (!param || !ts.isIdentifier(param)) return;
    const inner = (c: ts.Node) => {
      if (
        ts.isCallExpression(c) &&
        ts.isPropertyAccessExpression(c.expression) &&
        c.expression.name.text === 'safeParse' &&
        c.arguments[0] &&
        new RegExp(`^${param.text}\\b`).test(c.arguments[0].getText())
      ) {
        facts.body ??= this.schemaRef(c.expression.expression);
      }
      ts.forEachChild(c, inner);
    };
    inner(fnNode.body);
  }
}

// ---------------------------------------------------------------------------------------------
// TypeScript types → JSON Schema (the reply bodies)

class TypeSchemas {
  constructor(private readonly checker: ts.TypeChecker) {}

  /** Named object types (interfaces, aliases, a view function's result), once each, for `components.schemas`. */
  readonly named = new Map<string, Schema>();
  private readonly names = new Map<ts.Type, string>();

  /**
   * The name of an object type worth a component: an interface or type alias (`Lease`), or the
   * object literal a function returns directly (`blazarLease`, `ironicNode`). Nested anonymous
   * objects stay inline.
   */
  private nameOf(t: ts.Type): string | undefined {
    const alias = t.aliasSymbol && !t.aliasTypeArguments?.length ? t.aliasSymbol.name : undefined;
    if (alias) return alias;
    const sym = t.getSymbol();
    if (!sym) return undefined;
    if (!sym.name.startsWith('__')) return sym.name === 'Object' || sym.name === 'Array' ? undefined : sym.name;
    let n: ts.Node | undefined = sym.declarations?.[0];
    if (!n || !ts.isObjectLiteralExpression(n)) return undefined;
    while (n.parent && (ts.isParenthesizedExpression(n.parent) || ts.isAsExpression(n.parent))) n = n.parent;
    const up = n.parent;
    const fn = up && ts.isReturnStatement(up) ? up.parent?.parent : up && ts.isArrowFunction(up) ? up : undefined;
    if (fn && ts.isFunctionDeclaration(fn) && fn.name) return fn.name.text;
    if (fn && ts.isArrowFunction(fn) && ts.isVariableDeclaration(fn.parent) && ts.isIdentifier(fn.parent.name)) return fn.parent.name.text;
    return undefined;
  }

  /** An object type: by reference when it has a name, else inline. */
  private object(t: ts.Type, stack: ts.Type[]): Schema {
    const name = this.nameOf(t);
    if (!name) return this.shape(t, stack);
    let id = this.names.get(t);
    if (!id) {
      id = name.replace(/[^A-Za-z0-9._-]/g, '_');
      for (let i = 2; this.named.has(id); i++) id = `${name}_${i}`;
      this.names.set(t, id);
      this.named.set(id, {});
      this.named.set(id, this.shape(t, []));
    }
    return { $ref: `#/components/schemas/${id}` };
  }

  of(t: ts.Type, stack: ts.Type[] = []): Schema {
    const f = t.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown | ts.TypeFlags.Never)) return {};
    if (f & ts.TypeFlags.StringLiteral) return { type: 'string', const: (t as ts.StringLiteralType).value };
    if (f & ts.TypeFlags.NumberLiteral) return { type: 'number', const: (t as ts.NumberLiteralType).value };
    if (f & ts.TypeFlags.BooleanLiteral) return { type: 'boolean', const: this.checker.typeToString(t) === 'true' };
    if (f & (ts.TypeFlags.String | ts.TypeFlags.TemplateLiteral)) return { type: 'string' };
    if (f & ts.TypeFlags.Number) return { type: 'number' };
    if (f & ts.TypeFlags.Boolean) return { type: 'boolean' };
    if (f & ts.TypeFlags.Null) return { type: 'null' };
    if (f & (ts.TypeFlags.Undefined | ts.TypeFlags.Void)) return {};
    if (stack.includes(t) || stack.length > 12) return {};
    const inner = [...stack, t];
    if (t.isUnion()) return this.union(t.types.filter((x) => !(x.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void))), inner);
    if (this.checker.isArrayType(t) || this.checker.isTupleType(t)) {
      const args = this.checker.getTypeArguments(t as ts.TypeReference);
      if (this.checker.isTupleType(t)) return { type: 'array', prefixItems: args.map((a) => this.of(a, inner)), minItems: args.length, maxItems: args.length };
      return { type: 'array', items: args[0] ? this.of(args[0], inner) : {} };
    }
    if (f & ts.TypeFlags.Object || t.isIntersection()) {
      const name = this.checker.typeToString(t);
      if (name === 'Date') return { type: 'string', format: 'date-time' };
      if (name === 'Uint8Array' || name.startsWith('Buffer')) return { type: 'string', contentEncoding: 'base64' };
      return this.object(t, inner);
    }
    return {};
  }

  private shape(t: ts.Type, inner: ts.Type[]): Schema {
    {
      const props: Record<string, Schema> = {};
      const required: string[] = [];
      for (const p of this.checker.getPropertiesOfType(t)) {
        const decl = p.valueDeclaration ?? p.declarations?.[0];
        const pt = decl ? this.checker.getTypeOfSymbolAtLocation(p, decl) : this.checker.getTypeOfSymbol(p);
        if (pt.getCallSignatures().length > 0) continue;
        props[p.name] = this.of(pt, inner);
        const optional = (p.flags & ts.SymbolFlags.Optional) !== 0 || (pt.isUnion() && pt.types.some((x) => x.flags & ts.TypeFlags.Undefined)) || pt.flags & ts.TypeFlags.Undefined;
        if (!optional) required.push(p.name);
      }
      const index = this.checker.getIndexInfosOfType(t).find((i) => i.keyType.flags & ts.TypeFlags.String);
      const out: Schema = { type: 'object' };
      if (Object.keys(props).length) out.properties = props;
      if (required.length) out.required = required;
      if (index) out.additionalProperties = this.of(index.type, inner);
      return out;
    }
  }

  private union(types: ts.Type[], stack: ts.Type[]): Schema {
    const bools = types.filter((x) => x.flags & ts.TypeFlags.BooleanLiteral);
    const rest = types.filter((x) => !(x.flags & ts.TypeFlags.BooleanLiteral));
    const parts: Schema[] = bools.length === 2 ? [{ type: 'boolean' }] : bools.map((b) => this.of(b, stack));
    const literals = rest.filter((x) => x.flags & ts.TypeFlags.StringLiteral).map((x) => (x as ts.StringLiteralType).value);
    if (literals.length) parts.push(literals.length === 1 ? { type: 'string', const: literals[0]! } : { type: 'string', enum: literals.sort() });
    for (const x of rest.filter((y) => !(y.flags & ts.TypeFlags.StringLiteral))) parts.push(this.of(x, stack));
    const unique = [...new Map(parts.map((p) => [JSON.stringify(p), p])).values()];
    if (unique.some((p) => Object.keys(p).length === 0)) return {};
    if (unique.length === 1) return unique[0]!;
    // `string | null` and the like: one `type` list, as JSON Schema 2020-12 reads it.
    if (unique.every((p) => Object.keys(p).length === 1 && typeof p.type === 'string')) return { type: unique.map((p) => p.type as string) };
    return { anyOf: unique };
  }
}

// ---------------------------------------------------------------------------------------------
// Error bodies, one format per surface style (layers/http/errors.ts)

/**
 * The error bodies `renderError` writes, as zod schemas: test/unit/openapi.test.ts renders an
 * error in every style and parses it with these, so they cannot drift from errors.ts; the
 * `Record<ErrorStyle, …>` type makes a new style fail to compile until it is described here.
 */
export const ERROR_BODIES: Record<ErrorStyle, { name: string; media: string; schema: z.ZodMiniType; description: string }> = {
  blazar: {
    name: 'BlazarError',
    media: 'application/json',
    schema: z.strictObject({ error_code: z.number(), error_message: z.string(), error_name: z.string() }),
    description: 'Blazar/Sahara error: the status, a message and a symbolic name (`INVALID_HOST`, `UNAUTHORIZED`, ...).',
  },
  sahara: {
    name: 'SaharaError',
    media: 'application/json',
    schema: z.strictObject({ error_code: z.number(), error_message: z.string(), error_name: z.string() }),
    description: 'Sahara error (native surface): the status, a message and a symbolic name.',
  },
  ironic: {
    name: 'IronicError',
    media: 'application/json',
    schema: z.strictObject({ error_message: z.string() }),
    description: 'Ironic (WSME) error: `error_message` is itself a JSON document `{"faultcode": "Client"|"Server", "faultstring": "...", "debuginfo": null}`.',
  },
  drydock: {
    name: 'DrydockError',
    media: 'application/json',
    schema: z.strictObject({ type: z.literal('error'), message: z.string(), retry: z.boolean(), code: z.string() }),
    description: 'Drydock error: `code` is the status line (`404 Not Found`), `retry` is true for 503.',
  },
  falcon: {
    name: 'FalconError',
    media: 'application/json',
    schema: z.strictObject({ title: z.string(), description: z.string() }),
    description: "falcon's HTTP error (Drydock boot actions): `title` is the status line.",
  },
  keystone: {
    name: 'KeystoneError',
    media: 'application/json',
    schema: z.strictObject({ error: z.strictObject({ code: z.number(), title: z.string(), message: z.string() }) }),
    description: 'Keystone v3 error: `{"error": {"code", "title", "message"}}`; keystoneauth shows `message`.',
  },
  commissaire: {
    name: 'CommissaireError',
    media: 'text/html',
    schema: z.string(),
    description: 'Commissaire error: the reason phrase alone as text/html (`Not Found`). Missing or wrong credentials are 403 `Forbidden`, never 401.',
  },
};

function jsonSchemaOf(schema: z.ZodMiniType): Schema {
  const out = z.toJSONSchema(schema as never, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as Schema;
  delete out.$schema;
  return out;
}

// ---------------------------------------------------------------------------------------------
// The document

const STATUS_TEXT: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '202': 'Accepted',
  '204': 'No Content',
  '302': 'Found: the resource is at `Location` (a presigned URL)',
  '2XX': 'Success; the handler chooses the code at run time',
};

/**
 * A route's path in the document. OpenAPI has no greedy parameter: API Gateway's `{proxy+}`
 * (the console's files) is written `{proxy}`, its parameter saying that it spans segments.
 */
export const docPath = (path: string): string => path.replace(/\{([^}]+)\+\}/g, '{$1}');

/** Request headers that are no parameter of an operation: HTTP's own, and the credentials (`security`). */
const IMPLICIT_HEADERS = new Set(['host', 'x-forwarded-proto', 'content-type', 'accept', 'accept-encoding', 'user-agent', 'x-auth-token', 'authorization', 'idempotency-key']);
const HEADER_NOTES: Record<string, string> = {
  'x-bootaction-key': "The node's boot-action key: deploying nodes authenticate with it, not with a token.",
  'openstack-api-version': 'Microversion, e.g. `reservation 1.0` (Blazar) or `baremetal 1.78` (Ironic).',
  'x-openstack-ironic-api-version': 'Ironic microversion (`1.1` to the maximum in `GET /`, or `latest`).',
  'x-subject-token': 'The token to check or revoke.',
  'if-none-match': 'An ETag from an earlier answer: 304 when it still matches.',
};

const pathParams = (path: string) => [...path.matchAll(/\{([^}+]+)\+?\}/g)].map((m) => m[1]!);

/** `GET /v1/nodes/{node_ident}` → `ironic_get_v1_nodes_node_ident`. */
const operationId = (r: RouteSpec) => `${r.fn}_${r.method.toLowerCase()}${r.path.replace(/[^A-Za-z0-9]+/g, '_').replace(/_$/, '') || '_root'}`;

/**
 * Builds the document from the route table and the handler sources. Every route of the table
 * but the catch-alls and `.json` twins is an operation; a route whose handler cannot be read
 * fails the build (a new way of writing a handler table needs teaching to `SurfaceReader`).
 */
export async function buildOpenApi(table: readonly RouteSpec[] = routes): Promise<Record<string, Json>> {
  const fns = [...new Set(table.map((r) => r.fn))].sort();
  const files = fns.map((fn) => join(REPO_ROOT, `functions/api/${fn}.ts`));
  const prog = program(files);
  const checker = prog.getTypeChecker();
  const types = new TypeSchemas(checker);
  const surfaces = new Map<string, SurfaceFacts>();
  for (const fn of fns) surfaces.set(fn, new SurfaceReader(checker, prog.getSourceFile(join(REPO_ROOT, `functions/api/${fn}.ts`))!).read(fn));

  const schemaCache = new Map<string, Schema>();
  const zodSchema = async (ref: { file: string; name: string }): Promise<Schema> => {
    const id = `${ref.file}#${ref.name}`;
    if (!schemaCache.has(id)) {
      const mod = (await import(pathToFileURL(ref.file).href)) as Record<string, unknown>;
      const s = mod[ref.name];
      if (!s) throw new Error(`openapi: ${relative(REPO_ROOT, ref.file)} does not export ${ref.name}: export the schema so the document can describe it`);
      schemaCache.set(id, jsonSchemaOf(s as z.ZodMiniType));
    }
    return schemaCache.get(id)!;
  };

  // Shared components: the bigger reply bodies that several operations answer with, once.
  const components: Record<string, Schema> = {};
  const useCount = new Map<string, { count: number; name: string; schema: Schema }>();
  const bodies: { op: Schema; status: string; key: string }[] = [];

  const paths: Record<string, Record<string, Json>> = {};
  const headerParams: Record<string, Json> = {};
  for (const r of table) {
    if (!isDocumented(r) || isJsonTwin(r, table)) continue;
    const s = surfaces.get(r.fn)!;
    const key = handlerKey(r);
    const h = s.handlers.get(key);
    if (!h) throw new Error(`openapi: functions/api/${r.fn}.ts has no handler for ${key} that the generator can read`);
    const jsonTwin = table.some((t) => t.method === r.method && t.path === `${r.path}.json`);
    const err = ERROR_BODIES[s.style];
    const op: Record<string, Json> = {
      operationId: operationId(r),
      tags: [tagOf(r.fn)],
      summary: `${r.method} ${r.path}`,
    };
    // A literal last segment has its `.json` twin in the table; a trailing `{param}` takes `x.json` itself.
    const notes = [h.comment, jsonTwin || (s.jsonSuffix && r.path.endsWith('}')) ? 'Also answers with a `.json` suffix on the path.' : undefined].filter(Boolean);
    if (jsonTwin) op['x-slipway-json-suffix'] = true;
    if (notes.length) op.description = notes.join(' ');
    const params: Json[] = pathParams(r.path).map((name) => ({
      name,
      in: 'path',
      required: true,
      ...(r.path.includes(`{${name}+}`) ? { description: 'The rest of the path: one or more segments, `/` included.' } : {}),
      schema: { type: 'string' },
    }));
    const fromSchema = new Set<string>();
    if (h.query) {
      const q = await zodSchema(h.query);
      for (const [name, schema] of Object.entries((q.properties ?? {}) as Record<string, Schema>)) {
        fromSchema.add(name);
        params.push({ name, in: 'query', required: ((q.required ?? []) as string[]).includes(name), schema });
      }
    }
    for (const name of [...h.queryNames].filter((n) => !fromSchema.has(n)).sort()) params.push({ name, in: 'query', required: false, schema: { type: 'string' } });
    // Request headers, each a shared component (`Header.x-bootaction-key`).
    for (const name of [...h.requestHeaders].filter((x) => !IMPLICIT_HEADERS.has(x)).sort()) {
      headerParams[`Header.${name}`] = { name, in: 'header', required: false, ...(HEADER_NOTES[name] ? { description: HEADER_NOTES[name] } : {}), schema: { type: 'string' } };
      params.push({ $ref: `#/components/parameters/Header.${name}` });
    }
    if (r.method === 'POST' && r.auth === 'token') {
      params.push({ $ref: '#/components/parameters/IdempotencyKey' });
    }
    if (params.length) op.parameters = params;
    if (h.body) {
      op.requestBody = { required: true, content: { 'application/json': { schema: await zodSchema(h.body) } } };
    } else if (h.rawBody) {
      op.requestBody = { required: true, description: 'Sent as it is (not JSON-parsed by the surface); the handler reads the text.', content: { '*/*': { schema: { type: 'string' } } } };
    } else if (['POST', 'PUT', 'PATCH'].includes(r.method) && r.fn !== 'ironic') {
      op.requestBody = {
        required: false,
        description: 'A JSON body, checked by the use-case itself (no zod schema of the route to describe it).',
        content: { 'application/json': { schema: { type: 'object' } } },
      };
    }
    const responses: Record<string, Json> = {};
    for (const [status, reply] of [...h.replies.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const resp: Record<string, Json> = { description: STATUS_TEXT[status] ?? status };
      // HEAD: the GET's answer without its body (surface.ts drops it on the way out).
      if (r.method === 'HEAD') resp.description += ', no body';
      // A raw reply: text, bytes, or a JSON document the handler serialised itself (this one).
      else if (reply.media) resp.content = { [reply.media]: { schema: /\bjson\b/.test(reply.media) ? {} : { type: 'string', ...(reply.media.startsWith('text/') ? {} : { contentMediaType: reply.media }) } } };
      else if (reply.types.length) {
        const schema = reply.types.length === 1 ? types.of(reply.types[0]!) : { anyOf: reply.types.map((t) => types.of(t)) };
        const text = JSON.stringify(schema);
        const seen = useCount.get(text) ?? { count: 0, name: `${operationId(r)}_${status}`, schema };
        seen.count++;
        useCount.set(text, seen);
        const content: Schema = { schema };
        resp.content = { 'application/json': content };
        bodies.push({ op: content, status, key: text });
      }
      const headers = [...reply.headers].filter((h) => h.toLowerCase() !== 'content-type').sort();
      if (status === '302' && !headers.includes('Location')) headers.unshift('Location');
      if (headers.length) resp.headers = Object.fromEntries(headers.map((h) => [h, { schema: { type: 'string' } }]));
      responses[status] = resp;
    }
    if (Object.keys(responses).length === 0) throw new Error(`openapi: ${key} (functions/api/${r.fn}.ts) answers with no reply helper the generator knows`);
    if (r.auth === 'token') responses[s.style === 'commissaire' ? '403' : '401'] = { $ref: `#/components/responses/${err.name}Unauthorized` };
    responses.default = { $ref: `#/components/responses/${err.name}` };
    op.responses = responses;
    // Routes without a token say so; the rest inherit the document's `security`.
    if (r.auth === 'none') op.security = [];
    else if (s.basicUsers) op.security = [{ token: [] }, { basic: [] }];
    (paths[docPath(r.path)] ??= {})[r.method.toLowerCase()] = op;
  }

  // A body schema two operations share, and of some size, goes to components once.
  for (const b of bodies) {
    const seen = useCount.get(b.key)!;
    if (seen.count < 2 || b.key.length < 200) continue;
    components[seen.name] = seen.schema;
    b.op.schema = { $ref: `#/components/schemas/${seen.name}` };
  }

  const errorSchemas: Record<string, Json> = {};
  const errorResponses: Record<string, Json> = {};
  for (const style of new Set([...surfaces.values()].map((s) => s.style))) {
    const e = ERROR_BODIES[style];
    errorSchemas[e.name] = { ...jsonSchemaOf(e.schema), description: e.description };
    const content = { [e.media]: { schema: { $ref: `#/components/schemas/${e.name}` } } };
    errorResponses[e.name] = { description: `An error, in this surface's format. ${e.description}`, content };
    errorResponses[`${e.name}Unauthorized`] = {
      description: style === 'commissaire' ? 'No valid credentials (Commissaire answers 403, never 401).' : 'No valid token (`X-Auth-Token`).',
      content,
    };
  }

  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const tags = fns.map((fn) => {
    const d = surfaces.get(fn)!.description;
    return { name: tagOf(fn), ...(d ? { description: d } : {}) };
  });
  return {
    openapi: '3.1.0',
    info: {
      title: 'Slipway',
      version: pkg.version,
      description:
        'Every HTTP surface of Slipway (Blazar, Ironic, Drydock, Commissaire, the native API, the agent job queue, boot actions, Keystone identity), generated from the route table (infra/routes.ts) and the handlers\' zod schemas and view types by `npm run openapi`. Each surface answers errors in its upstream\'s format.',
    },
    servers: [{ url: '/', description: 'The API itself (the document is served at `/openapi.json` of the same origin).' }],
    security: [{ token: [] }],
    tags,
    paths: Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b))),
    components: {
      securitySchemes: {
        token: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Auth-Token',
          description: 'A Slipway token (`slp_…`, or a Keystone token from `POST /v3/auth/tokens`). `Authorization: Bearer <token>` and `Basic` with the token as password are read too.',
        },
        ...([...surfaces.values()].some((x) => x.basicUsers)
          ? { basic: { type: 'http', scheme: 'basic', description: "A user's name and password (Commissaire, as upstream's htpasswd backend); a token as the password works too." } }
          : {}),
      },
      schemas: { ...errorSchemas, ...Object.fromEntries(Object.entries({ ...components, ...Object.fromEntries(types.named) }).sort(([a], [b]) => a.localeCompare(b))) },
      responses: errorResponses,
      parameters: {
        // surface.ts withIdempotency: every POST with a token.
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description: 'A retry with the same key and body replays the first answer (`Idempotent-Replayed: true`); the same key with another body is 422, a retry while the first still runs 409.',
          schema: { type: 'string', maxLength: 255 },
        },
        ...Object.fromEntries(Object.entries(headerParams).sort(([a], [b]) => a.localeCompare(b))),
      },
    },
  };
}

/** The document as the committed file holds it. */
export const renderOpenApi = (doc: unknown): string => `${JSON.stringify(doc, null, 2)}\n`;

/** The module the system function serves: the compact document, gzipped, in base64. */
export function renderOpenApiGzip(doc: unknown): string {
  const b64 = gzipSync(JSON.stringify(doc), { level: 9 }).toString('base64');
  return [
    '// GENERATED by `npm run openapi` (infra/openapi.ts) from layers/http/openapi.json: do not edit.',
    '// The OpenAPI document, compact and gzipped (base64), as the system function serves it.',
    `export const OPENAPI_GZIP = '${b64}';`,
    '',
  ].join('\n');
}

/** Checks that renderError's bodies parse with ERROR_BODIES (used by the test). */
export function renderedErrorBody(style: ErrorStyle, err: unknown): unknown {
  const r = renderError(style, err);
  return ERROR_BODIES[style].media === 'application/json' ? JSON.parse(r.body) : r.body;
}

// `npm run openapi`: write the document.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const doc = await buildOpenApi();
  writeFileSync(OPENAPI_FILE, renderOpenApi(doc));
  writeFileSync(OPENAPI_GZIP_FILE, renderOpenApiGzip(doc));
  console.info(`wrote ${relative(process.cwd(), OPENAPI_FILE)} (${Object.keys(doc.paths as object).length} paths)`);
}
