/**
 * OpenAPI 3.0 document built from the route table: the request schemas are the very objects
 * fastify validates with (no second copy to drift).
 */
export interface RouteDoc {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** fastify URL (:param, * wildcard) */
  url: string;
  /** OpenAPI path when the fastify URL uses a wildcard */
  openapiUrl?: string;
  scope: 'read' | 'call' | 'admin' | 'public';
  summary: string;
  description?: string;
  schema?: { body?: object; params?: object; querystring?: object };
  responses?: Record<number, object>;
}

interface ObjSchema {
  properties?: Record<string, object>;
  required?: readonly string[];
}

function parameters(r: RouteDoc): object[] {
  const out: object[] = [];
  const params = r.schema?.params as ObjSchema | undefined;
  const wildcardName = r.openapiUrl ? /\{(\w+)\}$/.exec(r.openapiUrl)?.[1] : undefined;
  for (const [name, schema] of Object.entries(params?.properties ?? {})) {
    out.push({ name: name === '*' ? (wildcardName ?? 'path') : name, in: 'path', required: true, schema });
  }
  const q = r.schema?.querystring as ObjSchema | undefined;
  for (const [name, schema] of Object.entries(q?.properties ?? {})) {
    out.push({ name, in: 'query', required: q?.required?.includes(name) ?? false, schema });
  }
  return out;
}

export function buildOpenApi(routes: RouteDoc[], version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of routes) {
    const path = r.openapiUrl ?? r.url.replace(/:(\w+)/g, '{$1}');
    const responses: Record<string, object> = {
      401: { description: 'missing or invalid bearer token' },
      403: { description: `the token lacks the "${r.scope}" scope, or the request is denied` },
      400: { description: 'a parameter failed validation' },
    };
    for (const [code, schema] of Object.entries(r.responses ?? { 200: { type: 'object' } })) {
      responses[code] = { description: Number(code) < 400 ? 'success' : 'refused', content: { 'application/json': { schema } } };
    }
    const op: Record<string, unknown> = {
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      operationId: `${r.method.toLowerCase()}${path.replace(/\{(\w+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      'x-scope': r.scope,
      security: r.scope === 'public' ? [] : [{ bearer: [] }],
      parameters: parameters(r),
      responses,
    };
    if (r.schema?.body) op.requestBody = { required: true, content: { 'application/json': { schema: r.schema.body } } };
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.0.3',
    info: {
      title: 'pbx-guardian REST API',
      version,
      description:
        'Calls, messages and status (salara-compatible result codes), AMI actions, bans and Asterisk config files. ' +
        'Authenticate with "Authorization: Bearer <token>"; each operation names its scope in x-scope (admin implies read and call).',
    },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths,
  };
}
