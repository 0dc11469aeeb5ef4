import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;
import jdk.internal.org.objectweb.asm.ClassReader;
import jdk.internal.org.objectweb.asm.ClassVisitor;
import jdk.internal.org.objectweb.asm.ClassWriter;
import jdk.internal.org.objectweb.asm.Handle;
import jdk.internal.org.objectweb.asm.Label;
import jdk.internal.org.objectweb.asm.MethodVisitor;
import jdk.internal.org.objectweb.asm.Opcodes;

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
 * (java.base's jdk.internal.org.objectweb.asm, exported to this program by the command line).
 *
 *   java --add-exports java.base/jdk.internal.org.objectweb.asm=ALL-UNNAMED -cp <dir> DynamoLocalPatches <jar> <out dir>
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
      written += write(jar, TRANSACT, 1, Paths.get(args[1]), (cv, count) -> new SharedMapper(cv, count));
      written += write(jar, EXPRESSIONS, 5, Paths.get(args[1]), (cv, count) -> new CachedParse(cv, count));
    }
    System.out.println("DynamoLocalPatches: " + written + " of 2 classes patched");
  }

  interface Rewrite {
    ClassVisitor wrap(ClassVisitor to, int[] count);
  }

  /** Rewrites one class; writes it only when the rewrite met exactly `expected` patterns. */
  static int write(JarFile jar, String name, int expected, Path out, Rewrite rewrite) throws IOException {
    ZipEntry entry = jar.getEntry(name + ".class");
    if (entry == null) {
      System.out.println("DynamoLocalPatches: " + name + " not in the jar; left as shipped");
      return 0;
    }
    byte[] original;
    try (var in = jar.getInputStream(entry)) {
      original = in.readAllBytes();
    }
    ClassReader reader = new ClassReader(original);
    // Each rewrite swaps instructions for one that leaves the same value on the stack, with no
    // branch target between them: the class's stack map frames and maximum sizes stay valid.
    ClassWriter writer = new ClassWriter(0);
    int[] count = {0};
    reader.accept(rewrite.wrap(writer, count), 0);
    if (count[0] != expected) {
      System.out.println("DynamoLocalPatches: " + name + ": " + count[0] + " of the " + expected + " expected calls found; left as shipped");
      return 0;
    }
    Path file = out.resolve(name + ".class");
    Files.createDirectories(file.getParent());
    Files.write(file, writer.toByteArray());
    return 1;
  }

  /** In the constructor: NEW DynamoDbObjectMapper, DUP, INVOKESPECIAL <init>()V → INVOKESTATIC DynamoLoopback.transactionMapper(). */
  static final class SharedMapper extends ClassVisitor {
    private final int[] count;

    SharedMapper(ClassVisitor to, int[] count) {
      super(Opcodes.ASM8, to);
      this.count = count;
    }

    @Override
    public MethodVisitor visitMethod(int access, String name, String desc, String signature, String[] exceptions) {
      MethodVisitor mv = super.visitMethod(access, name, desc, signature, exceptions);
      if (!name.equals("<init>")) return mv;
      return new MethodVisitor(Opcodes.ASM8, mv) {
        /** 0: nothing held back; 1: NEW held back; 2: NEW and DUP held back. */
        private int held;

        private void release() {
          if (held >= 1) super.visitTypeInsn(Opcodes.NEW, MAPPER);
          if (held >= 2) super.visitInsn(Opcodes.DUP);
          held = 0;
        }

        @Override
        public void visitTypeInsn(int opcode, String type) {
          release();
          if (opcode == Opcodes.NEW && type.equals(MAPPER)) held = 1;
          else super.visitTypeInsn(opcode, type);
        }

        @Override
        public void visitInsn(int opcode) {
          if (held == 1 && opcode == Opcodes.DUP) {
            held = 2;
            return;
          }
          release();
          super.visitInsn(opcode);
        }

        @Override
        public void visitMethodInsn(int opcode, String owner, String mname, String mdesc, boolean itf) {
          if (held == 2 && opcode == Opcodes.INVOKESPECIAL && owner.equals(MAPPER) && mname.equals("<init>") && mdesc.equals("()V")) {
            held = 0;
            count[0]++;
            super.visitMethodInsn(Opcodes.INVOKESTATIC, HELPER, "transactionMapper", "()L" + MAPPER + ";", false);
            return;
          }
          release();
          super.visitMethodInsn(opcode, owner, mname, mdesc, itf);
        }

        // Any other instruction or label ends a held-back pattern.
        @Override
        public void visitVarInsn(int opcode, int var) {
          release();
          super.visitVarInsn(opcode, var);
        }

        @Override
        public void visitFieldInsn(int opcode, String owner, String fname, String fdesc) {
          release();
          super.visitFieldInsn(opcode, owner, fname, fdesc);
        }

        @Override
        public void visitLdcInsn(Object value) {
          release();
          super.visitLdcInsn(value);
        }

        @Override
        public void visitIntInsn(int opcode, int operand) {
          release();
          super.visitIntInsn(opcode, operand);
        }

        @Override
        public void visitJumpInsn(int opcode, Label label) {
          release();
          super.visitJumpInsn(opcode, label);
        }

        @Override
        public void visitLabel(Label label) {
          release();
          super.visitLabel(label);
        }

        @Override
        public void visitFrame(int type, int nLocal, Object[] local, int nStack, Object[] stack) {
          release();
          super.visitFrame(type, nLocal, local, nStack, stack);
        }

        @Override
        public void visitInvokeDynamicInsn(String n, String d, Handle h, Object... a) {
          release();
          super.visitInvokeDynamicInsn(n, d, h, a);
        }

        @Override
        public void visitIincInsn(int var, int increment) {
          release();
          super.visitIincInsn(var, increment);
        }

        @Override
        public void visitTableSwitchInsn(int min, int max, Label dflt, Label... labels) {
          release();
          super.visitTableSwitchInsn(min, max, dflt, labels);
        }

        @Override
        public void visitLookupSwitchInsn(Label dflt, int[] keys, Label[] labels) {
          release();
          super.visitLookupSwitchInsn(dflt, keys, labels);
        }

        @Override
        public void visitMultiANewArrayInsn(String desc, int dims) {
          release();
          super.visitMultiANewArrayInsn(desc, dims);
        }

        @Override
        public void visitMaxs(int maxStack, int maxLocals) {
          release();
          super.visitMaxs(maxStack, maxLocals);
        }
      };
    }
  }

  /**
   * In the static parse methods: INVOKEVIRTUAL com/amazon/dynamodb/grammar/XParser.parse(String,
   * ANTLRErrorListener) → INVOKESTATIC DynamoLoopback.parseExpression(AbstractTwoStageExpressionParser,
   * String, ANTLRErrorListener): the same three operands, the same result.
   */
  static final class CachedParse extends ClassVisitor {
    private final int[] count;

    CachedParse(ClassVisitor to, int[] count) {
      super(Opcodes.ASM8, to);
      this.count = count;
    }

    @Override
    public MethodVisitor visitMethod(int access, String name, String desc, String signature, String[] exceptions) {
      MethodVisitor mv = super.visitMethod(access, name, desc, signature, exceptions);
      if ((access & Opcodes.ACC_STATIC) == 0 || !name.startsWith("parse")) return mv;
      return new MethodVisitor(Opcodes.ASM8, mv) {
        @Override
        public void visitMethodInsn(int opcode, String owner, String mname, String mdesc, boolean itf) {
          if (opcode == Opcodes.INVOKEVIRTUAL && owner.startsWith(GRAMMAR) && owner.endsWith("Parser") && mname.equals("parse") && mdesc.equals(PARSE_DESC)) {
            count[0]++;
            super.visitMethodInsn(Opcodes.INVOKESTATIC, HELPER, "parseExpression", "(L" + GRAMMAR + "AbstractTwoStageExpressionParser;" + PARSE_DESC.substring(1), false);
            return;
          }
          super.visitMethodInsn(opcode, owner, mname, mdesc, itf);
        }
      };
    }
  }
}
