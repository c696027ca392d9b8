/** Chat templates, the parsed form: expressions and the statement nodes a template is made of. */

export type Expr =
  | { t: 'lit'; v: unknown }
  | { t: 'name'; name: string }
  | { t: 'list'; items: Expr[] }
  | { t: 'dict'; entries: [Expr, Expr][] }
  | { t: 'attr'; obj: Expr; name: string }
  | { t: 'index'; obj: Expr; index: Expr }
  | { t: 'slice'; obj: Expr; start?: Expr; stop?: Expr; step?: Expr }
  | { t: 'call'; fn: Expr; args: Expr[]; kwargs: [string, Expr][] }
  | { t: 'filter'; value: Expr; name: string; args: Expr[]; kwargs: [string, Expr][] }
  | { t: 'test'; value: Expr; name: string; args: Expr[]; negate: boolean }
  | { t: 'unary'; op: string; value: Expr }
  | { t: 'binary'; op: string; left: Expr; right: Expr }
  | { t: 'cond'; test: Expr; then: Expr; else?: Expr }

export type Node =
  | { t: 'text'; value: string }
  | { t: 'output'; expr: Expr }
  | { t: 'if'; branches: { test: Expr; body: Node[] }[]; else: Node[] }
  | { t: 'for'; targets: string[]; iter: Expr; filter?: Expr; body: Node[]; else: Node[] }
  | { t: 'set'; target: string; attr?: string; value?: Expr; body?: Node[] }
  | { t: 'macro'; name: string; params: [string, Expr | undefined][]; body: Node[] }
  | { t: 'break' } | { t: 'continue' }
