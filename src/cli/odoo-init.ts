// placeholder replaced when the Odoo bridge lands
export async function odooInitCommand(_url: string, _db: string, _configPath: string): Promise<string> {
  throw new Error('odoo init is not available in this build');
}
