import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;
import jdk.internal.org.objectweb.asm.ClassReader;
import jdk.internal.org.objectweb.asm.ClassWriter;
import jdk.internal.org.objectweb.asm.Opcodes;
import jdk.internal.org.objectweb.asm.tree.AbstractInsnNode;
import jdk.internal.org.objectweb.asm.tree.ClassNode;
import jdk.internal.org.objectweb.asm.tree.MethodInsnNode;
import jdk.internal.org.objectweb.asm.tree.MethodNode;
import jdk.internal.org.objectweb.asm.tree.TypeInsnNode;

/**
 * Two calls in DynamoDB Local's jar redirected to DynamoLoopback.java, which does their work
 * once instead of on every request (issue 16; docs/fleet-scale.md has the profile and figures):
 *
 * - TransactWriteItemsFunction's constructor: `new DynamoDbObjectMapper()` becomes
 *   `DynamoLoopback.transactionMapper()`, one mapper for every transaction.
 * - DynamoDbExpressionParser's five static methods: `new XParser().parse(text, listener)` becomes
 *   `DynamoLoopback.parseExpression(new XParser(), text, listener)`, which keeps each cleanly
 *   parsed tree.
 *
 * Run once when infra/local/dynamodb.ts compiles the launcher: it reads each class from the jar
 * and writes the rewritten one into the launcher's class directory, which is ahead of the jar on
 * the class path. Each rewrite replaces one instruction pattern with a static call that leaves
 * the same value on the stack, and must find exactly the patterns it expects; otherwise nothing
 * is written for that class and the jar's own is loaded. Uses the JDK's own copy of ASM
 * (java.base's jdk.internal.org.objectweb.asm and its tree package, exported to this program by
 * the command line).
 *
 *   java --add-exports java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED \\
 *        --add-exports java.base/jdk.internal.org.objectweb.asm.tree=ALL-UNNAMED DynamoLocalPatches.java <jar> <out dir>
 */
public class DynamoLocalPatches {
  static final String TRANSACT = "software/amazon/dynamodb/services/local/shared/access/api/dp/TransactWriteItemsFunction";
  static final String MAPPER = "software/amazon/dynamodb/services/local/shared/mapper/DynamoDbObjectMapper";
  static final String EXPRESSIONS = "com/amazon/dynamodb/grammar/DynamoDbExpressionParser";
  static final String GRAMMAR = "com/amazon/dynamodb/grammar/";
  static final String PARSE_DESC = "(Ljava/lang/String;Lorg/antlr/v4/runtime/ANTLRErrorListener;)Lorg/antlr/v4/runtime/tree/ParseTree;";
  static final String HELPER = "DynamoLoopback";

  public static void main(String[] args) throws IOException {
    if (args.length != 2) throw new IllegalArgumentException("usage: DynamoLocalPatches <DynamoDBLocal.jar> <out dir>");
    int written = 0;
    try (JarFile jar = new JarFile(args[0])) {
      written += write(jar, TRANSACT, 1, Paths.get(args[1]), DynamoLocalPatches::shareMapper);
      written += write(jar, EXPRESSIONS, 5, Paths.get(args[1]), DynamoLocalPatches::cacheParses);
    }
    System.out.println("DynamoLocalPatches: " + written + " of 2 classes patched");
  }

  /** Rewrites a method's instructions in place; answers how many call patterns it rewrote. */
  interface Rewrite {
    int apply(MethodNode method);
  }

  /** Rewrites one class; writes it only when its methods held exactly `expected` patterns. */
  static int write(JarFile jar, String name, int expected, Path out, Rewrite rewrite) throws IOException {
    ZipEntry entry = jar.getEntry(name + ".class");
    if (entry == null) {
      System.out.println("DynamoLocalPatches: " + name + " not in the jar; left as shipped");
      return 0;
    }
    ClassNode node = new ClassNode();
    try (var in = jar.getInputStream(entry)) {
      new ClassReader(in.readAllBytes()).accept(node, 0);
    }
    int count = 0;
    for (MethodNode method : node.methods) count += rewrite.apply(method);
    if (count != expected) {
      System.out.println("DynamoLocalPatches: " + name + ": " + count + " of the " + expected + " expected calls found; left as shipped");
      return 0;
    }
    // Each rewrite swaps instructions for one static call that leaves the same value on the
    // stack, with no branch target between them: the class's stack map frames and maximum sizes
    // stay valid, so none are computed (which would load the jar's classes here).
    ClassWriter writer = new ClassWriter(0);
    node.accept(writer);
    Path file = out.resolve(name + ".class");
    Files.createDirectories(file.getParent());
    Files.write(file, writer.toByteArray());
    return 1;
  }

  /** In the constructor: NEW DynamoDbObjectMapper, DUP, INVOKESPECIAL <init>()V → INVOKESTATIC DynamoLoopback.transactionMapper(). */
  static int shareMapper(MethodNode method) {
    if (!method.name.equals("<init>")) return 0;
    int count = 0;
    for (AbstractInsnNode insn : method.instructions.toArray()) {
      AbstractInsnNode dup = insn.getNext();
      AbstractInsnNode init = dup == null ? null : dup.getNext();
      if (insn.getOpcode() == Opcodes.NEW && ((TypeInsnNode) insn).desc.equals(MAPPER)
          && dup != null && dup.getOpcode() == Opcodes.DUP
          && init instanceof MethodInsnNode call && call.getOpcode() == Opcodes.INVOKESPECIAL
          && call.owner.equals(MAPPER) && call.name.equals("<init>") && call.desc.equals("()V")) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "transactionMapper", "()L" + MAPPER + ";", false));
        method.instructions.remove(dup);
        method.instructions.remove(insn);
        count++;
      }
    }
    return count;
  }

  /**
   * In the static parse methods: INVOKEVIRTUAL com/amazon/dynamodb/grammar/XParser.parse(String,
   * ANTLRErrorListener) → INVOKESTATIC DynamoLoopback.parseExpression(AbstractTwoStageExpressionParser,
   * String, ANTLRErrorListener): the same three operands, the same result.
   */
  static int cacheParses(MethodNode method) {
    if ((method.access & Opcodes.ACC_STATIC) == 0 || !method.name.startsWith("parse")) return 0;
    int count = 0;
    for (AbstractInsnNode insn : method.instructions.toArray()) {
      if (insn instanceof MethodInsnNode call && call.getOpcode() == Opcodes.INVOKEVIRTUAL
          && call.owner.startsWith(GRAMMAR) && call.owner.endsWith("Parser") && call.name.equals("parse") && call.desc.equals(PARSE_DESC)) {
        method.instructions.set(call, new MethodInsnNode(Opcodes.INVOKESTATIC, HELPER, "parseExpression", "(L" + GRAMMAR + "AbstractTwoStageExpressionParser;" + PARSE_DESC.substring(1), false));
        count++;
      }
    }
    return count;
  }
}
